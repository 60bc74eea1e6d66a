//! A fixed number of permits shared fairly among clients: when one is
//! freed it goes to the next client in turn, not to the longest waiter, so
//! a client with many requests queued waits behind its own, and one with
//! a single request waits behind at most one request of each other client
//! with work queued. A client is whatever key the caller counts by (an
//! address, an IPv6 /64).
//!
//! A waiter that gives up (its future dropped) leaves the line; a permit
//! handed to it on the way is passed on, never lost.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

pub struct FairPermits<K: Eq + Hash + Clone> {
    state: Mutex<State<K>>,
}

struct State<K: Eq + Hash + Clone> {
    free: usize,
    /// Clients with someone waiting, in the order they are served.
    turn: VecDeque<K>,
    waiting: HashMap<K, VecDeque<oneshot::Sender<Permit<K>>>>,
}

/// One permit; dropping it hands it to the next client in turn.
pub struct Permit<K: Eq + Hash + Clone> {
    owner: Option<Arc<FairPermits<K>>>,
}

impl<K: Eq + Hash + Clone> FairPermits<K> {
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(FairPermits {
            state: Mutex::new(State {
                free: permits,
                turn: VecDeque::new(),
                waiting: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for `client`, once its turn comes.
    pub async fn acquire(self: &Arc<Self>, client: K) -> Permit<K> {
        let waiting = {
            let mut state = self.lock();
            if state.free > 0 {
                // Free permits mean nobody waits (a freed permit goes to
                // a waiter first).
                state.free -= 1;
                return Permit {
                    owner: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            let line = state.waiting.entry(client.clone()).or_default();
            let first = line.is_empty();
            line.push_back(tx);
            if first {
                state.turn.push_back(client);
            }
            rx
        };
        // The sender lives in `waiting` until it is handed a permit; it is
        // dropped unsent only with `self`, which this call holds.
        waiting.await.expect("the permits outlive their waiters")
    }

    /// How many are waiting, for tests.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting.values().map(VecDeque::len).sum()
    }

    /// Gives a freed permit to the next client in turn, or back to the
    /// free count when nobody waits.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                let Some(client) = state.turn.pop_front() else {
                    state.free += 1;
                    return;
                };
                let line = state
                    .waiting
                    .get_mut(&client)
                    .expect("a client in turn waits");
                let next = line.pop_front().expect("a line in turn is not empty");
                if line.is_empty() {
                    state.waiting.remove(&client);
                } else {
                    state.turn.push_back(client);
                }
                next
            };
            let permit = Permit {
                owner: Some(self.clone()),
            };
            match next.send(permit) {
                Ok(()) => return,
                // That waiter gave up: the next one gets it.
                Err(mut unsent) => unsent.owner = None,
            }
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Permit<K> {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// With one permit held, five requests from `a` then one from `b`:
    /// `b` is served second, not sixth.
    #[tokio::test]
    async fn a_client_with_one_request_waits_behind_one_of_each_other_client() {
        let permits = FairPermits::new(1);
        let held = permits.acquire("x").await;
        let (done, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (client, n) in [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5), ("b", 1)] {
            let (shared, done) = (permits.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = shared.acquire(client).await;
                done.send(format!("{client}{n}")).unwrap();
                tokio::task::yield_now().await;
            }));
            // Queue them in this order.
            while permits.waiting() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        drop(done);
        let mut served = Vec::new();
        while let Some(s) = order.recv().await {
            served.push(s);
        }
        assert_eq!(served, ["a1", "b1", "a2", "a3", "a4", "a5"]);
    }

    /// A waiter that gives up leaves the line; the permit it would have
    /// had goes on to the next, and all come back free at the end.
    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_permit() {
        let permits = FairPermits::new(2);
        let one = permits.acquire("a").await;
        let two = permits.acquire("a").await;
        let gives_up = tokio::time::timeout(Duration::from_millis(10), permits.acquire("b")).await;
        assert!(gives_up.is_err(), "no permit was free");
        let waits = {
            let permits = permits.clone();
            tokio::spawn(async move { permits.acquire("c").await })
        };
        while permits.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        drop(one);
        let three = waits.await.unwrap();
        drop((two, three));
        assert_eq!(permits.lock().free, 2);
        assert_eq!(permits.waiting(), 0);
    }
}
