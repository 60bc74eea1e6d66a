//! The in-process penalty store: the default for one node, and the
//! fallback of a node whose shared store is down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Counts, PenaltyStore, StoreError};

/// Keys tracked at most; beyond it, stale entries are swept first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Address(String),
    User(String),
}

struct Entry {
    failures: u32,
    last: Instant,
}

/// Failure counts in a table of this process.
#[derive(Default)]
pub struct LocalStore {
    table: Mutex<HashMap<Key, Entry>>,
}

impl LocalStore {
    pub fn new() -> LocalStore {
        LocalStore::default()
    }

    /// [`PenaltyStore::failed`], at `now`.
    pub fn failed_at(
        &self,
        address: &str,
        user: Option<&str>,
        forget: Duration,
        now: Instant,
    ) -> Counts {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_ENTRIES {
            table.retain(|_, e| now.duration_since(e.last) < forget);
        }
        let mut bump = |key: Key| {
            let entry = table.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= forget {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last = now;
            entry.failures
        };
        Counts {
            address: bump(Key::Address(address.to_owned())),
            user: user.map_or(0, |u| bump(Key::User(u.to_owned()))),
        }
    }

    pub fn clear(&self, address: &str, user: Option<&str>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&Key::Address(address.to_owned()));
        if let Some(u) = user {
            table.remove(&Key::User(u.to_owned()));
        }
    }
}

#[async_trait::async_trait]
impl PenaltyStore for LocalStore {
    async fn failed(
        &self,
        address: &str,
        user: Option<&str>,
        forget: Duration,
    ) -> Result<Counts, StoreError> {
        Ok(self.failed_at(address, user, forget, Instant::now()))
    }

    async fn succeeded(&self, address: &str, user: Option<&str>) -> Result<(), StoreError> {
        self.clear(address, user);
        Ok(())
    }

    fn describe(&self) -> String {
        "in-process".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_forgotten_after_a_quiet_spell() {
        let s = LocalStore::new();
        let forget = Duration::from_secs(60);
        let t0 = Instant::now();
        assert_eq!(
            s.failed_at("a", Some("u"), forget, t0),
            Counts {
                address: 1,
                user: 1
            }
        );
        assert_eq!(
            s.failed_at("b", Some("u"), forget, t0),
            Counts {
                address: 1,
                user: 2
            }
        );
        assert_eq!(
            s.failed_at("a", None, forget, t0),
            Counts {
                address: 2,
                user: 0
            }
        );
        let later = t0 + forget;
        assert_eq!(
            s.failed_at("a", Some("u"), forget, later),
            Counts {
                address: 1,
                user: 1
            }
        );
        s.clear("a", Some("u"));
        assert_eq!(
            s.failed_at("a", Some("u"), forget, later),
            Counts {
                address: 1,
                user: 1
            }
        );
    }
}
