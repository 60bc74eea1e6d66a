//! Brute-force protection across connections, after Dovecot's auth
//! penalty: every failed login from an address doubles the pause before
//! that address's next failure is answered, up to a cap; a success clears
//! it, and so does a quiet spell. Failures are also counted per user name
//! (a spread attack on one account from many addresses), and the pause
//! follows the larger count. Trusted networks are exempt. IPv6 addresses
//! count per /64, since one host usually holds a whole /64.
//!
//! The API every protocol calls is [`Penalty::failure`] and
//! [`Penalty::success`]. The counts live in a [`PenaltyStore`]: the
//! in-process [`LocalStore`] by default, or a Redis/Valkey server shared by
//! a fleet of nodes ([`RedisStore`], `[auth] penalty-store`), so that a
//! brute force spread over N nodes is penalised as if it hit one. The local
//! counts are always kept too: when the shared store fails or is slower
//! than [`STORE_TIMEOUT`], the login goes on with them (logged once, shown
//! by `portcullis_penalty_store_up`), and the shared store is tried again
//! at most every [`RETRY_INTERVAL`] until it answers.

mod local;
mod redis;

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use local::LocalStore;
pub use redis::RedisStore;

/// The longest a login waits on the shared store before going on with
/// the local counts.
pub const STORE_TIMEOUT: Duration = Duration::from_millis(250);
/// While the shared store is down, how often a login tries it again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// User names longer than this are counted by their first this many bytes.
const MAX_USER_KEY: usize = 256;

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

/// The failure counts after one more failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub address: u32,
    pub user: u32,
}

/// A store the shared store failed with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Where failure counts are kept: one small interface, so that any store
/// with atomic increments and expiry serves. `address` is the counting key
/// of the client address ([`key`]), `user` the claimed user name; each
/// count is forgotten after `forget` without a failure.
#[async_trait::async_trait]
pub trait PenaltyStore: Send + Sync {
    /// Adds one failure to each key, atomically; returns the new counts
    /// (0 for a user name not given).
    async fn failed(
        &self,
        address: &str,
        user: Option<&str>,
        forget: Duration,
    ) -> Result<Counts, StoreError>;
    /// Clears both keys' counts.
    async fn succeeded(&self, address: &str, user: Option<&str>) -> Result<(), StoreError>;
    /// What it is, for the log.
    fn describe(&self) -> String;
}

/// A shared store and whether it answered last time.
struct Shared {
    store: Arc<dyn PenaltyStore>,
    /// `None`: up; `Some(t)`: down since it last failed at `t`.
    down: Mutex<Option<tokio::time::Instant>>,
}

/// The penalty policy, over the counts.
pub struct Penalty {
    base: Duration,
    cap: Duration,
    /// A quiet spell this long forgets an address's failures.
    forget: Duration,
    trusted: Vec<Network>,
    local: LocalStore,
    shared: Option<Shared>,
}

impl Penalty {
    /// A penalty counted in this process only.
    pub fn new(base: Duration, cap: Duration, trusted: Vec<Network>) -> Penalty {
        Penalty {
            base,
            cap,
            forget: Duration::from_secs(15 * 60).max(cap * 4),
            trusted,
            local: LocalStore::new(),
            shared: None,
        }
    }

    /// Counts in `store` as well, shared with every node that uses it.
    pub fn with_store(mut self, store: Arc<dyn PenaltyStore>) -> Penalty {
        crate::metrics::METRICS.penalty_store_up(true);
        self.shared = Some(Shared {
            store,
            down: Mutex::new(None),
        });
        self
    }

    /// Records a failed login from `ip` (for `user`, if the client named
    /// one); returns how long to pause before answering it: `base`, then
    /// twice as long for each failure since, up to `cap`. Never waits on
    /// the shared store longer than [`STORE_TIMEOUT`].
    pub async fn failure(&self, ip: IpAddr, user: Option<&str>) -> Duration {
        if self.exempt(ip) {
            return Duration::ZERO;
        }
        let (address, user) = (key(ip).to_string(), user.map(user_key));
        let local = self
            .local
            .failed_at(&address, user, self.forget, Instant::now());
        let counts = match self
            .shared_call(|s| s.failed(&address, user, self.forget))
            .await
        {
            Some(Ok(counts)) => counts,
            _ => local,
        };
        self.pause(counts.address.max(counts.user))
    }

    /// A successful login from `ip` clears its record, and `user`'s.
    pub async fn success(&self, ip: IpAddr, user: Option<&str>) {
        let (address, user) = (key(ip).to_string(), user.map(user_key));
        self.local.clear(&address, user);
        if !self.exempt(ip) {
            let _ = self.shared_call(|s| s.succeeded(&address, user)).await;
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.base.is_zero() || self.trusted.iter().any(|n| n.contains(ip))
    }

    fn pause(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        (self.base * 2u32.pow(doublings)).min(self.cap)
    }

    /// Runs `call` on the shared store, if there is one and it is not
    /// known to be down (or is due a retry), within [`STORE_TIMEOUT`];
    /// keeps track of whether it answers. `None`: not tried.
    async fn shared_call<'a, T, F, Fut>(&'a self, call: F) -> Option<Result<T, StoreError>>
    where
        F: FnOnce(&'a dyn PenaltyStore) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + 'a,
    {
        let shared = self.shared.as_ref()?;
        let now = tokio::time::Instant::now();
        let down_since = *shared.down.lock().unwrap_or_else(|e| e.into_inner());
        if down_since.is_some_and(|t| now.duration_since(t) < RETRY_INTERVAL) {
            crate::metrics::METRICS.penalty_store_fallback();
            return None;
        }
        let result = match tokio::time::timeout(STORE_TIMEOUT, call(shared.store.as_ref())).await {
            Ok(result) => result,
            Err(_) => Err(StoreError(format!(
                "no answer within {} ms",
                STORE_TIMEOUT.as_millis()
            ))),
        };
        let mut down = shared.down.lock().unwrap_or_else(|e| e.into_inner());
        match (&result, down.is_some()) {
            (Ok(_), true) => {
                tracing::warn!(store = %shared.store.describe(),
                    "penalty store answers again; counting there");
                crate::metrics::METRICS.penalty_store_up(true);
                *down = None;
            }
            (Err(e), was_down) => {
                if !was_down {
                    tracing::error!(store = %shared.store.describe(),
                        "penalty store failed: {e}; counting failures on this node only until it answers");
                    crate::metrics::METRICS.penalty_store_up(false);
                }
                crate::metrics::METRICS.penalty_store_fallback();
                *down = Some(tokio::time::Instant::now());
            }
            (Ok(_), false) => {}
        }
        Some(result)
    }
}

/// A user name as a counting key: at most [`MAX_USER_KEY`] bytes (on a
/// character boundary).
fn user_key(user: &str) -> &str {
    if user.len() <= MAX_USER_KEY {
        return user;
    }
    let mut end = MAX_USER_KEY;
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    &user[..end]
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

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[tokio::test]
    async fn doubling_capped_cleared_per_address_and_user() {
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        let p = Penalty::new(Duration::from_secs(1), Duration::from_secs(5), trusted);
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(secs(p.failure(ip("192.0.2.1"), Some("alice")).await));
        }
        assert_eq!(got, [1, 2, 4, 5, 5]);
        // Another address, another user: independent. Loopback is trusted.
        assert_eq!(secs(p.failure(ip("192.0.2.2"), Some("bob")).await), 1);
        assert_eq!(
            p.failure(ip("127.0.0.1"), Some("bob")).await,
            Duration::ZERO
        );
        // One /64 is one key.
        p.failure(ip("2001:db8::1"), None).await;
        assert_eq!(secs(p.failure(ip("2001:db8::2"), None).await), 2);
        // A new address trying alice is paused by alice's count.
        assert_eq!(secs(p.failure(ip("192.0.2.3"), Some("alice")).await), 5);
        // Success clears the address and the user.
        p.success(ip("192.0.2.1"), Some("alice")).await;
        assert_eq!(secs(p.failure(ip("192.0.2.1"), Some("alice")).await), 1);
    }

    /// A store that fails until told otherwise, counting its calls.
    struct Flaky {
        up: std::sync::atomic::AtomicBool,
        inner: LocalStore,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl PenaltyStore for Flaky {
        async fn failed(
            &self,
            address: &str,
            user: Option<&str>,
            forget: Duration,
        ) -> Result<Counts, StoreError> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
                // A dead store that never answers: the timeout must cut it.
                std::future::pending::<()>().await;
            }
            Ok(self.inner.failed_at(address, user, forget, Instant::now()))
        }
        async fn succeeded(&self, address: &str, user: Option<&str>) -> Result<(), StoreError> {
            self.inner.clear(address, user);
            Ok(())
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_store_costs_one_timeout_then_local_counts_until_it_returns() {
        let store = Arc::new(Flaky {
            up: false.into(),
            inner: LocalStore::new(),
            calls: 0.into(),
        });
        // Another node already counted three failures for this address.
        for _ in 0..3 {
            store
                .inner
                .failed_at("192.0.2.1", None, Duration::from_secs(900), Instant::now());
        }
        let p = Penalty::new(Duration::from_secs(1), Duration::from_secs(60), Vec::new())
            .with_store(store.clone());
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            secs(p.failure(ip("192.0.2.1"), None).await),
            1,
            "local count"
        );
        assert_eq!(t0.elapsed(), STORE_TIMEOUT, "waited one timeout");
        assert_eq!(secs(p.failure(ip("192.0.2.1"), None).await), 2);
        assert_eq!(t0.elapsed(), STORE_TIMEOUT, "not tried again so soon");
        assert_eq!(store.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        store.up.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::advance(RETRY_INTERVAL).await;
        // Back: the shared count (three, plus this one) decides again.
        assert_eq!(secs(p.failure(ip("192.0.2.1"), None).await), 8);
    }
}
